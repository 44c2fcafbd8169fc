"""`adapter` for sqlfluff's jinja templater (dbt_project/.sqlfluff): the one method of dbt's adapter
that the macros call. `adapter.dispatch(name, namespace)` returns the `duckdb__<name>` macro, as
dbt-duckdb (the default profile) would, else `default__<name>`: lint reads the SQL the default
profile runs."""

from jinja2 import Undefined, pass_context


@pass_context
def dispatch(context, macro_name: str, macro_namespace: str | None = None):
    for candidate in (f"duckdb__{macro_name}", f"default__{macro_name}"):
        macro = context.resolve(candidate)
        if not isinstance(macro, Undefined):
            return macro
    raise LookupError(f"adapter.dispatch({macro_name!r}): no duckdb__{macro_name} or default__{macro_name} macro")
