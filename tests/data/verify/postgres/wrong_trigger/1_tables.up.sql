CREATE TABLE a (id integer PRIMARY KEY, n integer);
CREATE TABLE b (id integer PRIMARY KEY, n integer);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := NEW.n + 1; RETURN NEW; END $$;
