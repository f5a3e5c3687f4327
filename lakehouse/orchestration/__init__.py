"""Airflow: the DAG building blocks (``dags``), and the local Airflow service and its REST client."""
