"""One definition of a run cgroup's name: what creates it, what recovery sweeps and what the
tests' leftover checks look for all agree, so a renamed prefix cannot make a check vacuous."""

from fnmatch import fnmatch

from sysops.sandbox import cgroups


def test_every_glob_matches_the_names_it_is_meant_to_find():
    name = cgroups.run_cgroup_name(42, 1879048200, 31337, 0)
    assert name.startswith(cgroups.RUN_CGROUP_PREFIX)
    assert fnmatch(name, cgroups.run_cgroup_glob())
    assert fnmatch(name, cgroups.run_cgroup_glob(creator_pid=31337))
    assert fnmatch(name, cgroups.run_cgroup_glob(42, 1879048200, 31337))
    assert not fnmatch(name, cgroups.run_cgroup_glob(creator_pid=31338))
    assert not fnmatch(name, cgroups.run_cgroup_glob(43))


def test_recovery_reads_the_creator_back():
    assert cgroups.creator_of(cgroups.run_cgroup_name("adhoc", 100001, 4242, 3)) == 4242
    assert cgroups.creator_of("sysops-probe-12") is None
    assert cgroups.creator_of("something-else") is None
