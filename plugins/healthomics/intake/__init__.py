"""Manifests landing in S3 become flowcell runs: S3 event notifications through SQS, or a sweep."""
