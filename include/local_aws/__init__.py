"""The local AWS stack: moto (S3, SQS, SNS, STS) and the HealthOmics emulator.

Both run as separate processes on 127.0.0.1, reached through real HTTP by real boto3
clients. The same class backs ``make stack-up``/``make demo`` and the pytest fixtures,
so there is one way to start, probe and stop the stack::

    with LocalAWS(workdir) as stack:
        s3 = stack.client("s3")
        omics = stack.client("omics")
        env = stack.env()  # AWS_* and AIRFLOW_CONN_AWS_DEFAULT for Airflow processes
"""
