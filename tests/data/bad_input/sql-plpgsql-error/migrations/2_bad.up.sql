CREATE TABLE a (i int);
DO $$ BEGIN RAISE EXCEPTION 'boom %', 42; END $$;
