"""Drop-in backends for other libraries (PyLate first). Each module imports its library lazily."""
