-- 0004: who may open the local web page, and how they stay signed in.
-- Only hashes are kept: argon2id for passwords and the setup code, SHA-256 for
-- session tokens (a copy of this file, e.g. a backup, must not let anyone in).

CREATE TABLE staff (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,           -- lower case, checked by the web forms
    role          TEXT NOT NULL CHECK (role IN ('admin', 'secretary')),
    password_hash TEXT NOT NULL,                  -- argon2id PHC string
    created_at    TEXT NOT NULL,
    disabled_at   TEXT                            -- NULL while the account may sign in
);

-- Server-side sessions: the cookie carries a random token, the row only its hash,
-- so logging out (or disabling an account) ends a session for good.
CREATE TABLE web_sessions (
    token_hash   TEXT PRIMARY KEY,                -- hex SHA-256 of the cookie's token
    staff_id     INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,                   -- synchronizer token of every form of this session
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL                    -- idle expiry, pushed back as the session is used
);
CREATE INDEX web_sessions_by_staff ON web_sessions (staff_id);

-- Wrong passwords (and wrong setup codes), for rate limiting by name and by address.
CREATE TABLE login_failures (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,                       -- as typed, lower case; '(setup)' for the setup code
    address  TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX login_failures_by_name ON login_failures (username, at);
CREATE INDEX login_failures_by_address ON login_failures (address, at);

-- The one-time code that lets the first administrator be created. One row at most.
CREATE TABLE setup_code (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    code_hash  TEXT NOT NULL,                     -- argon2id of the normalised code
    created_at TEXT NOT NULL,
    used_at    TEXT                               -- set when the first administrator was created
);
