-- How many digits the sign-in number has (2 to 6); the risk of the user can raise it for one
-- sign-in (sign_in::risk::number_digits). 2 is what every sign-in had before.
ALTER TABLE policy ADD COLUMN number_length INTEGER NOT NULL DEFAULT 2;
