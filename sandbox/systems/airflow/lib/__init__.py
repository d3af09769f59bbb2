"""The code the sandbox installs on PYTHONPATH of every Airflow process (see sandbox/systems/airflow/files.py)."""
