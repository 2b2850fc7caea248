"""The acbuild-compatible image builder: a build context in .acbuild/ and its commands."""
