def test_forced_failure(host):
    assert host.check_output("hostname") == "not-this"
