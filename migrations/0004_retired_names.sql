-- Names never given again (issue 17, item 5; RFC 9700 4.15): the username of
-- every user deleted through the admin API (it was their tokens' `sub`) and
-- the id of every deleted client. Written in the transaction that deletes
-- the user or client; never removed. A new user may not take a retired name
-- of either kind, nor a new client a retired username.
CREATE TABLE retired_names (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'client'))
);
