"""A real Airflow deployment as local processes: api-server, scheduler, dag-processor, triggerer.

The same components a production deployment runs, started from the project's virtualenv
with a throwaway ``AIRFLOW_HOME``, on a free port, against SQLite (LocalExecutor) or a
given database URL. Tests and benchmarks use it for what ``dag.test()`` cannot show:
triggers in a real triggerer (shared polls, ``TaskSuccessEvent``, ``on_kill``),
triggerer restarts, and the REST API the UI uses::

    with LocalAirflow(workdir, dags_folder, env=stack.env()) as airflow:
        airflow.unpause("healthomics_flowcell")
        run_id = airflow.trigger("healthomics_flowcell", conf={...})
        airflow.wait_for_dag_run("healthomics_flowcell", run_id)

By default every caller is an admin and there is no login. With ``users`` (user name ->
password) the UI asks for a login and the REST helpers authenticate as the first user.
"""
