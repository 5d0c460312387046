-- 0001: first schema of the box.
-- Times are UTC text 'YYYY-MM-DDTHH:MM:SSZ' (db.utc_text): fixed width, so text
-- order is time order. JSON columns hold text produced by json.dumps.

-- A copy of the practice file, replaced as a whole by queries.save_practice, so
-- the set-up page can show it without parsing TOML. Appointments do not point at
-- it with foreign keys: a practitioner who leaves keeps their past appointments.
CREATE TABLE practitioners (
    id           TEXT PRIMARY KEY,
    position     INTEGER NOT NULL,           -- order in which the assistant offers them
    display_name TEXT NOT NULL,
    last_name    TEXT NOT NULL,
    aliases      TEXT NOT NULL DEFAULT '[]'  -- JSON list of text
);

CREATE TABLE visit_reasons (
    id               TEXT PRIMARY KEY,
    position         INTEGER NOT NULL,
    label            TEXT NOT NULL,
    duration_min     INTEGER NOT NULL CHECK (duration_min > 0),
    practitioner_ids TEXT NOT NULL DEFAULT '[]',  -- JSON list; empty = every practitioner
    new_patients     INTEGER NOT NULL CHECK (new_patients IN (0, 1)),
    keywords         TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE opening_hours (
    weekday    INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),  -- 0 = Monday
    start_time TEXT NOT NULL,                                     -- 'HH:MM', practice wall clock
    end_time   TEXT NOT NULL,
    PRIMARY KEY (weekday, start_time),
    CHECK (end_time > start_time)
);

CREATE TABLE closures (
    start_date TEXT NOT NULL,  -- 'YYYY-MM-DD', inclusive
    end_date   TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (start_date, end_date),
    CHECK (end_date >= start_date)
);

CREATE TABLE calls (
    id         TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    caller_id  TEXT,            -- NULL when the network withheld it
    line       TEXT NOT NULL,
    outcome    TEXT,            -- NULL while the call is going on
    summary    TEXT             -- JSON object
);
CREATE INDEX calls_by_start ON calls (started_at);

CREATE TABLE call_events (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,   -- since the call was answered
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL DEFAULT '{}',  -- JSON object
    PRIMARY KEY (call_id, seq)
);

-- AUTOINCREMENT: an id once given (and sent to the cloud as 'appt-12') is never
-- given again, even if the highest row were deleted.
CREATE TABLE appointments (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    practitioner_id    TEXT NOT NULL,
    reason_id          TEXT NOT NULL,
    start_utc          TEXT NOT NULL,
    end_utc            TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    origin             TEXT NOT NULL CHECK (origin IN ('phone', 'seed', 'cloud', 'staff')),
    patient_last_name  TEXT NOT NULL,
    patient_first_name TEXT NOT NULL DEFAULT '',
    patient_birth_date TEXT,          -- 'YYYY-MM-DD'; unknown for some cloud imports
    patient_phone      TEXT,
    call_id            TEXT REFERENCES calls (id) ON DELETE SET NULL,
    created_at         TEXT NOT NULL,
    sync_state         TEXT NOT NULL
        CHECK (sync_state IN ('pending', 'synced', 'failed', 'local_only')),
    CHECK (end_utc > start_utc)
);
-- The last line of defence against double booking: queries.book checks overlaps
-- first, this catches two bookings of the very same start whatever the code does.
CREATE UNIQUE INDEX appointments_one_booking_per_start
    ON appointments (practitioner_id, start_utc) WHERE status = 'booked';
CREATE INDEX appointments_booked_by_time
    ON appointments (start_utc, end_utc) WHERE status = 'booked';

-- The staff's inbox: messages left by callers.
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id    TEXT REFERENCES calls (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    category   TEXT NOT NULL,
    urgency    TEXT NOT NULL,
    summary    TEXT NOT NULL,
    transcript TEXT NOT NULL,
    patient    TEXT NOT NULL DEFAULT '{}',  -- JSON object: names, birth date, phone
    handled_at TEXT                          -- NULL until a person has dealt with it
);
CREATE INDEX messages_unhandled ON messages (created_at) WHERE handled_at IS NULL;

-- Changes waiting to reach the cloud agenda. The id gives the order, never a
-- clock: two rows of one aggregate are sent in the order they were written.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,              -- 'appointment.created', ...
    idempotency_key TEXT NOT NULL UNIQUE,       -- sent along, so a retry is not a second change
    aggregate_key   TEXT NOT NULL,              -- 'appt-12': rows of one key go one at a time, in id order
    payload         TEXT NOT NULL,              -- JSON object
    state           TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'leased', 'done', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at, id);
CREATE INDEX outbox_by_aggregate ON outbox (aggregate_key, id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL  -- JSON
);
