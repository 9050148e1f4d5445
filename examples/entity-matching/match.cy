/* Entity matching, Cymphony style: SQL proposes candidate pairs (same
   brand), people decide which pairs name the same product, SQL keeps the
   matches. store_b.csv's a_match column is the ground truth, used only by
   simulated workers (as gold_label). */
A = read_table("store_a.csv");
B = read_table("store_b.csv");
P = exec_sql(A, B, query="
    SELECT row_number() OVER (ORDER BY A._id, B._id) AS _id,
           A._id AS a_id, B._id AS b_id, A.title AS a_title, B.title AS b_title,
           CASE WHEN B.a_match = A._id THEN 'Yes' ELSE 'No' END AS gold_label
    FROM A JOIN B ON lower(A.brand) = lower(B.brand)");
(ANSWERS, LABELS) = 3a_kn(P, "instructions.html", "layout.html", k=2, n=3,
    question="Do these two listings name the same product?", answers=["Yes", "No"],
    annotation_time_limit=600);
M = exec_sql(P, LABELS, query="
    SELECT P.a_id, P.b_id, P.a_title, P.b_title
    FROM P JOIN LABELS ON P._id = LABELS._id
    WHERE LABELS.label = 'Yes' ORDER BY P.a_id, P.b_id");
write_table(M, file="matches.csv");
write_table(ANSWERS, file="answers.csv");
