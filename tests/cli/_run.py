"""What the command-line tests share: running ``skmll`` in-process, and labelling a world."""

from skmll.cli import main


def run_main(capsys, *args):
    """``skmll ARGS`` in this process: ``(exit code, stdout, stderr)``."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def labelled(world, folder):
    """``folder``, a label directory written by ``skmll label`` from the world's hub file and
    synset images."""
    assert main(["label", str(world / "hub.toml"), "--images", str(world / "images"),
                 "--labels", str(folder), "-q"]) == 0
    return folder
