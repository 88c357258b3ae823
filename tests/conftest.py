pytest_plugins = ["distributed.utils_test"]
