"""Everything users read: terminal tables, JSON/CSV, progress, plots. Formats only; decides nothing."""
