-- 0002: what the outbox worker, the pull and the retention purge need.

-- Which box wrote a booking: part of every booking key sent to the cloud
-- ('<box id>/appt-12'), so two boxes (or one box reinstalled) never send the
-- same key for two different bookings.
INSERT INTO settings (key, value) VALUES ('box_id', json_quote(lower(hex(randomblob(6)))))
    ON CONFLICT (key) DO NOTHING;

-- Appointments gain their cloud reference and two sync states: 'conflict' (the
-- cloud had someone else at that time) and 'dead' (the cloud refused it for
-- good). SQLite cannot change a CHECK in place: the table is rebuilt.
CREATE TABLE appointments_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    practitioner_id    TEXT NOT NULL,
    reason_id          TEXT NOT NULL,
    start_utc          TEXT NOT NULL,
    end_utc            TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    origin             TEXT NOT NULL CHECK (origin IN ('phone', 'seed', 'cloud', 'staff')),
    patient_last_name  TEXT NOT NULL,
    patient_first_name TEXT NOT NULL DEFAULT '',
    patient_birth_date TEXT,
    patient_phone      TEXT,
    call_id            TEXT REFERENCES calls (id) ON DELETE SET NULL,
    created_at         TEXT NOT NULL,
    sync_state         TEXT NOT NULL
        CHECK (sync_state IN ('pending', 'synced', 'conflict', 'dead', 'local_only')),
    revision           INTEGER NOT NULL DEFAULT 0,  -- +1 at each move: the moved row's key
    remote_id          TEXT,                        -- where the cloud keeps it, once known
    remote_version     TEXT,                        -- the cloud's ETag the box last saw
    cancelled_at       TEXT,
    CHECK (end_utc > start_utc)
);
INSERT INTO appointments_new (id, practitioner_id, reason_id, start_utc, end_utc, status, origin,
    patient_last_name, patient_first_name, patient_birth_date, patient_phone, call_id, created_at, sync_state)
SELECT id, practitioner_id, reason_id, start_utc, end_utc, status, origin,
    patient_last_name, patient_first_name, patient_birth_date, patient_phone, call_id, created_at,
    CASE sync_state WHEN 'failed' THEN 'dead' ELSE sync_state END
FROM appointments;
-- Keep AUTOINCREMENT's memory: an id once sent to the cloud is never given again.
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'appointments'))
    WHERE name = 'appointments_new';
DROP TABLE appointments;
ALTER TABLE appointments_new RENAME TO appointments;
CREATE UNIQUE INDEX appointments_one_booking_per_start
    ON appointments (practitioner_id, start_utc) WHERE status = 'booked';
CREATE INDEX appointments_booked_by_time
    ON appointments (start_utc, end_utc) WHERE status = 'booked';
CREATE INDEX appointments_by_patient
    ON appointments (patient_birth_date, patient_last_name);

-- The outbox worker's bookkeeping: who holds a lease, how a row ended.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN outcome TEXT;  -- 'sent', 'already_there', 'conflict' once done
ALTER TABLE outbox ADD COLUMN done_at TEXT;
CREATE INDEX outbox_done ON outbox (done_at) WHERE state = 'done';

-- The cloud agenda as last pulled: time taken by others (staff, the online
-- booking site) that the box must not offer, and the cloud's free Slots (FHIR)
-- with the version a booking must match.
CREATE TABLE cloud_agenda (
    adapter         TEXT NOT NULL,                       -- 'fhir', 'caldav'
    remote_id       TEXT NOT NULL,
    practitioner_id TEXT NOT NULL,
    start_utc       TEXT NOT NULL,
    end_utc         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('busy', 'free')),
    booking_key     TEXT,                                -- set when it is one of the box's own
    version         TEXT,
    pulled_at       TEXT NOT NULL,
    PRIMARY KEY (adapter, remote_id),
    CHECK (end_utc > start_utc)
);
CREATE INDEX cloud_agenda_by_time ON cloud_agenda (start_utc, end_utc);

CREATE INDEX call_events_by_call ON call_events (call_id);
CREATE INDEX messages_by_time ON messages (created_at);
