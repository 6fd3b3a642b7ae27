-- A display name, searchable, that starts out as the user's name.
ALTER TABLE users ADD COLUMN display_name TEXT;
UPDATE users SET display_name = name;
CREATE INDEX users_display_name ON users (display_name);
