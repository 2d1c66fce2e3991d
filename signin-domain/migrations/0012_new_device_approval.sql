-- When a device is enrolled, the user's other devices are asked "was this you?": a `new_device`
-- request that names it (`subject_account_id`). Behind a policy switch, a device enrolled for a
-- user who already has an active one waits for that approval (`awaiting_approval`): it gets no
-- sign-ins until then, and a denial removes it.
ALTER TABLE devices ADD COLUMN awaiting_approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE policy ADD COLUMN new_device_approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE signin_requests ADD COLUMN subject_account_id TEXT;
