-- 0005: when each session last had its password checked, for re-authentication.
-- Erasing a patient's data, downloading a full backup, managing accounts and
-- changing the cloud agenda's credentials ask for the password again when this
-- is more than a few minutes old: an unattended browser is not a free pass.
-- Sessions open before this migration had their password checked at login.

ALTER TABLE web_sessions ADD COLUMN password_checked_at TEXT;
UPDATE web_sessions SET password_checked_at = created_at;
