-- Every database starts with one notebook, exactly once.
INSERT INTO notebooks (id, name) VALUES (1, 'Inbox');
