"""`docker2aci` (and `pyrkt docker2aci`): convert a Docker/OCI image into ACIs."""

from __future__ import annotations

from pathlib import Path

import click

from registry import __version__
from registry.aci import APPC_VERSION, COMPRESSIONS
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


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    # What docker2aci -version prints (two lines).
    click.echo(f"docker2aci version {__version__}\nappc version {APPC_VERSION}")
    ctx.exit(0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option("-version", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_version, help="Print the version (docker2aci's and appc's).")
@click.argument("source")
@click.option("-o", "--output", "output_dir", type=click.Path(path_type=Path),
              default=Path("."), show_default=True,
              help="Directory to write the ACI(s) into (made when missing).")
@click.option("-nosquash", "--nosquash", is_flag=True,
              help="One ACI per layer, chained by dependencies, instead of one squashed ACI.")
@click.option("-compression", "--compression", type=click.Choice(COMPRESSIONS), default="gzip",
              show_default=True, help="Compression of the written ACI(s).")
@click.option("-insecure-allow-http", "--insecure-allow-http", is_flag=True,
              help="Use plain HTTP to reach a registry that has no HTTPS.")
@click.option("-insecure-skip-verify", "--insecure-skip-verify", is_flag=True,
              help="Do not verify registries' TLS certificates.")
@click.option("--insecure", is_flag=True,
              help="Both of the above, for any registry.")
@click.option("-image", "--image", "image", metavar="NAME",
              help="Which image of an archive or layout holding several (NAME:TAG or ref name); "
                   "the ACI is then named after it, registry included.")
@click.option("-debug", "--debug", is_flag=True, help="Print what is being done, to stderr.")
@click.option("--docker-config", type=click.Path(dir_okay=False, path_type=Path),
              help="Docker config file with registry credentials [default: ~/.docker/config.json].")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Trust this CA certificate bundle (PEM) for registries over HTTPS.")
def docker2aci(source: str, output_dir: Path, nosquash: bool, compression: str,
               insecure_allow_http: bool, insecure_skip_verify: bool, insecure: bool,
               image: str | None, debug: bool, docker_config: Path | None,
               ca_bundle: Path | None) -> None:
    """Convert SOURCE into an ACI.

    \b
    SOURCE is one of:
      docker://[REGISTRY/]NAME[:TAG|@DIGEST]   pulled from a Docker Registry v2 / OCI registry
      PATH.tar                                 a `docker save` tarball or an OCI layout in a tar
      DIRECTORY                                an OCI image layout
    Flags take one dash or two, as docker2aci's do (-nosquash or --nosquash).
    """
    if image is not None and source.startswith("docker://"):
        raise click.ClickException("flag --image works only with files")  # docker2aci's rule
    log = (lambda message: click.echo(message, err=True)) if debug else None
    options = ConvertOptions(squash=not nosquash, compression=compression, insecure=insecure,
                             insecure_allow_http=insecure_allow_http,
                             insecure_skip_verify=insecure_skip_verify, image=image,
                             docker_config=docker_config,
                             ca_bundle=str(ca_bundle) if ca_bundle else None, debug=log,
                             progress=renderer())
    try:
        results = convert(source, output_dir, options)
    except DockerError as err:
        raise click.ClickException(err.with_hint(
            "-insecure-allow-http and -insecure-skip-verify (or --insecure)")) from err
    except PyrktError as err:  # the format core's refusals, in its words
        raise click.ClickException(str(err)) from err
    _print_converted(results[-1].manifest)
    click.echo("\nGenerated ACI(s):")
    for result in results:
        click.echo(str(result.path))
        if debug:
            click.echo(f"  image ID {result.image_id}", err=True)


def _print_converted(manifest: dict) -> None:
    """docker2aci's report of the volumes and ports it converted (from the top image)."""
    app = manifest.get("app") or {}
    if app.get("mountPoints"):
        click.echo("\nConverted volumes:")
        for mount in app["mountPoints"]:
            click.echo(f'\tname: "{mount["name"]}", path: "{mount["path"]}", '
                       f'readOnly: {str(mount.get("readOnly", False)).lower()}')
    if app.get("ports"):
        click.echo("\nConverted ports:")
        for port in app["ports"]:
            click.echo(f'\tname: "{port["name"]}", protocol: "{port["protocol"]}", '
                       f'port: {port["port"]}, count: {port.get("count", 1)}, '
                       f'socketActivated: {str(port.get("socketActivated", False)).lower()}')
