"""Drives the local Mechanical Turk server with boto3, the AWS SDK, as a
requester script would drive the real service: boto3 signs with SigV4,
sends JSON 1.1 and parses the answers and errors by the service's own
model, so anything the server gets wrong about the protocol fails here.

Usage: python3 mturk_boto3.py http://127.0.0.1:PORT (keys from the
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment variables). A worker
answers the HIT through the server's worker side while this waits.
"""

import sys
import time

import boto3
import botocore.exceptions

endpoint = sys.argv[1]
mturk = boto3.client("mturk", region_name="us-east-1", endpoint_url=endpoint)

balance = mturk.get_account_balance()
assert balance["AvailableBalance"] == "10000.00", balance

question = (
    '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/'
    'AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd">'
    "<HTMLContent><![CDATA[<p>Is Ada a person?</p>]]></HTMLContent>"
    "<FrameHeight>0</FrameHeight></HTMLQuestion>"
)
NEW_HIT = dict(
    Title="Is this a person?",
    Description="One question",
    Reward="0.05",
    MaxAssignments=1,
    LifetimeInSeconds=600,
    AssignmentDurationInSeconds=60,
    Question=question,
    UniqueRequestToken="boto3-test-1",
)
created = mturk.create_hit(**NEW_HIT)
hit = created["HIT"]
assert hit["HITStatus"] == "Assignable", hit
assert hit["MaxAssignments"] == 1
# boto3 turns the epoch seconds into datetimes, as it does the real ones.
assert hit["CreationTime"].year >= 2024, hit["CreationTime"]

# The same token again: the service's error, with the HIT's id in it.
try:
    mturk.create_hit(**NEW_HIT)
    raise AssertionError("a repeated token made a second HIT")
except mturk.exceptions.RequestError as e:
    assert hit["HITId"] in str(e), str(e)

listed = mturk.list_hits(MaxResults=10)
assert [h["HITId"] for h in listed["HITs"]] == [hit["HITId"]], listed

deadline = time.time() + 30
while True:
    page = mturk.list_assignments_for_hit(
        HITId=hit["HITId"], AssignmentStatuses=["Submitted"]
    )
    if page["Assignments"]:
        break
    assert time.time() < deadline, "no worker answered"
    time.sleep(0.05)
a = page["Assignments"][0]
assert a["WorkerId"] == "WPY", a
assert "<FreeText>Yes</FreeText>" in a["Answer"], a["Answer"]
assert a["SubmitTime"].year >= 2024

mturk.approve_assignment(AssignmentId=a["AssignmentId"], RequesterFeedback="Thanks")
try:
    mturk.approve_assignment(AssignmentId=a["AssignmentId"])
    raise AssertionError("an approved assignment was approved again")
except mturk.exceptions.RequestError:
    pass
done = mturk.list_assignments_for_hit(HITId=hit["HITId"], AssignmentStatuses=["Approved"])
assert len(done["Assignments"]) == 1, done

mturk.create_additional_assignments_for_hit(
    HITId=hit["HITId"], NumberOfAdditionalAssignments=1, UniqueRequestToken="more-1"
)
assert mturk.get_hit(HITId=hit["HITId"])["HIT"]["MaxAssignments"] == 2
mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=0)
assert mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"
mturk.delete_hit(HITId=hit["HITId"])

bad = boto3.client(
    "mturk",
    region_name="us-east-1",
    endpoint_url=endpoint,
    aws_access_key_id=mturk._request_signer._credentials.access_key,
    aws_secret_access_key="wrong",
)
try:
    bad.get_account_balance()
    raise AssertionError("a wrong secret was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidSignatureException", e.response

print("ok")
