DROP INDEX notes_notebook;
DROP TABLE notes;
