"""make compat: the runtime wheel checked on the package sets of the deployments its users run (Amazon MWAA)."""
