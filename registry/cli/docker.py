"""`docker2aci` (and `pyrkt docker2aci`): convert a Docker/OCI image into ACIs."""

from __future__ import annotations

from pathlib import Path

import click

from registry import __version__
from registry.aci import COMPRESSIONS
from registry.cli.progress import renderer
from registry.docker.convert import ConvertOptions, convert
from registry.docker.errors import DockerError
from registry.errors import PyrktError

EPILOG = """\b
Examples:
  docker2aci docker://alpine:3.19
  docker2aci docker://registry.example.com:5000/team/app:1.0 -o ./acis
  docker save -o app.tar app:1.0 && docker2aci app.tar
  docker2aci --image app:1.0 images.tar          an archive holding several images
  docker2aci ./oci-layout                         an OCI image layout directory
  docker2aci --nosquash docker://busybox          one ACI per layer
  docker2aci --ca-bundle ca.pem docker://registry.test/team/app:1.0   a private CA
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(__version__, prog_name="docker2aci")
@click.argument("source")
@click.option("-o", "--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Directory to write the ACI(s) into.")
@click.option("--nosquash", is_flag=True,
              help="One ACI per layer, chained by dependencies, instead of one squashed ACI.")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="gzip", show_default=True,
              help="Compression of the written ACI(s).")
@click.option("--insecure", is_flag=True,
              help="Allow plain HTTP and unverified TLS certificates for any registry.")
@click.option("--image", "image", metavar="NAME",
              help="Which image of an archive or layout holding several (NAME:TAG or ref name).")
@click.option("--docker-config", type=click.Path(dir_okay=False, path_type=Path),
              help="Docker config file with registry credentials [default: ~/.docker/config.json].")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Trust this CA certificate bundle (PEM) for registries over HTTPS.")
def docker2aci(source: str, output_dir: Path, nosquash: bool, compression: str, insecure: bool,
               image: str | None, docker_config: Path | None, ca_bundle: Path | None) -> None:
    """Convert SOURCE into an ACI.

    \b
    SOURCE is one of:
      docker://[REGISTRY/]NAME[:TAG|@DIGEST]   pulled from a Docker Registry v2 / OCI registry
      PATH.tar                                 a `docker save` tarball or an OCI layout in a tar
      DIRECTORY                                an OCI image layout
    """
    options = ConvertOptions(squash=not nosquash, compression=compression, insecure=insecure,
                             image=image, docker_config=docker_config,
                             ca_bundle=str(ca_bundle) if ca_bundle else None,
                             progress=renderer())
    try:
        results = convert(source, output_dir, options)
    except DockerError as err:
        raise click.ClickException(err.with_hint("--insecure")) from err
    except PyrktError as err:  # the format core's refusals, in its words
        raise click.ClickException(str(err)) from err
    click.echo("Generated ACI(s):")
    for result in results:
        click.echo(f"{result.path}\t{result.image_id}")
