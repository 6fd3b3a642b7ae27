DROP INDEX users_display_name;
ALTER TABLE users DROP COLUMN display_name;
