"""The `mpcgate` command line: one module per command group, registered here."""

from __future__ import annotations

import click

from gateway.cli import admin, datasets, demo, doctor, jobs, kinds, models, pipelines, pki, serve, smoke


@click.group()
@click.version_option(package_name="mpcgate")
def main() -> None:
    """mpcgate: joint statistics and models across institutions, over secure
    multiparty computation, without sharing raw rows."""


main.add_command(demo.demo)
main.add_command(smoke.smoke)
main.add_command(pki.pki)
main.add_command(jobs.jobs)
main.add_command(pipelines.pipelines)
main.add_command(kinds.kinds)
main.add_command(datasets.datasets)
main.add_command(models.models)
main.add_command(serve.serve)
main.add_command(serve.dealer)
main.add_command(doctor.doctor)
main.add_command(admin.token)
main.add_command(admin.audit)
