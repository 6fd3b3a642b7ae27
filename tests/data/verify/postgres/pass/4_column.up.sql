ALTER TABLE users ADD COLUMN age integer CHECK (age >= 0);
CREATE VIEW adults AS SELECT id, name FROM users WHERE age >= 18;
CREATE MATERIALIZED VIEW user_count AS SELECT count(*) AS n FROM users;
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b text);
CREATE PROCEDURE touch(n integer) LANGUAGE sql AS $$ SELECT n $$;
