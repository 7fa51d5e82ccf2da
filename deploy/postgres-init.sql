-- deploy/docker-compose.yml: MLflow's tracking and registry database, beside the store's
-- (POSTGRES_DB=cur_ml). Run by the postgres image once, on an empty data directory.
CREATE DATABASE cur_ml_mlflow OWNER cur_ml;
