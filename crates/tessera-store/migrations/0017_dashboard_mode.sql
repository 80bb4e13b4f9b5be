-- The dashboard's live/test mode belongs to the person, not to a browser cookie (issue 13): a
-- new team's Admin starts in test mode, everyone else keeps live; the last mode a person opened
-- is where their next page (in any browser) opens.
ALTER TABLE users ADD COLUMN dashboard_mode TEXT NOT NULL DEFAULT 'live'
    CHECK (dashboard_mode IN ('live', 'test'));
