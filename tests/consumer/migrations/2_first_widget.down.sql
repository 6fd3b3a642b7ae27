DELETE FROM widgets WHERE name = 'sprocket';
