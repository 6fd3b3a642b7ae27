CREATE INDEX users_name ON users (lower(name)) WHERE name IS NOT NULL;
CREATE SEQUENCE tickets START 100 INCREMENT 5;
