"""The code the sandbox installs on PYTHONPATH of every Airflow process (see sandbox/airflow_files.py)."""
