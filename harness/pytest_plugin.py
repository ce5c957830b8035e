"""pytest plugin (registered through the ``pytest11`` entry point)."""


def pytest_addoption(parser):
    group = parser.getgroup("fsil", "flight-software-in-the-loop")
    group.addoption("--rig", action="append", default=[], metavar="NAME|PATH",
                    help="rig to fly the closed-loop tests on (repeat for several); default loopback")
