-- Accounts for people who use the web pages: passwords (argon2id hashes),
-- sign-in sessions kept as expiring tokens, how a workspace lets people
-- join, and invitations by single-use token.

ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE workspaces ADD COLUMN registration TEXT NOT NULL DEFAULT 'invite';

CREATE TABLE invitations (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id BIGINT  NOT NULL REFERENCES workspaces(id),
    role         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    created_by   BIGINT  NOT NULL REFERENCES users(id),
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    used_by      BIGINT  REFERENCES users(id),
    used_at      BIGINT
);
CREATE INDEX invitations_workspace ON invitations (workspace_id, id);
