-- Extra databases on the shared Postgres: Label Studio's and MLflow's stores.
CREATE DATABASE labelstudio OWNER alweb;
CREATE DATABASE mlflow OWNER alweb;
