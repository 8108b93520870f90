#!/bin/sh
# First start of the compose PostgreSQL: two roles, two databases. The main role cannot
# read the key store and the other way round, and each database is backed up on its own
# (the key store with a short retention: docs/PRIVACY.md, crypto-shredding).
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
    -v main_pw="$AUSWEG_DB_PASSWORD" -v keys_pw="$AUSWEG_KEYS_DB_PASSWORD" <<'SQL'
CREATE ROLE ausweg LOGIN PASSWORD :'main_pw';
CREATE ROLE ausweg_keys LOGIN PASSWORD :'keys_pw';
CREATE DATABASE ausweg OWNER ausweg;
CREATE DATABASE ausweg_keys OWNER ausweg_keys;
REVOKE ALL ON DATABASE ausweg FROM PUBLIC;
REVOKE ALL ON DATABASE ausweg_keys FROM PUBLIC;
SQL
