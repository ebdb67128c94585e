#!/bin/sh
# Create the MLflow and Prefect databases, each owned by its own login role.
# Runs once, on the first start of an empty data volume, from /docker-entrypoint-initdb.d
# (works with the official postgres image and with docker/Dockerfile.postgres).
# Passwords come from the environment (docker/.env); nothing is stored in the image.
set -eu

create_db() {
  role=$1
  password=$2
  db=$3
  echo "init-databases: role $role, database $db"
  psql -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname="${POSTGRES_DB:-$POSTGRES_USER}" \
    -v role="$role" -v password="$password" -v db="$db" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
SQL
}

create_db "${MLFLOW_DB_USER:-mlflow}" "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}" \
  "${MLFLOW_DB_NAME:-mlflow}"
create_db "${PREFECT_DB_USER:-prefect}" "${PREFECT_DB_PASSWORD:?PREFECT_DB_PASSWORD is not set}" \
  "${PREFECT_DB_NAME:-prefect}"
