CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, name text DEFAULT 'x' COLLATE "C", feeling mood);
COMMENT ON TABLE users IS 'people';
