"""The one exception the data layer raises for anything a user can get wrong."""


class DatasetError(Exception):
    """A dataset that cannot be loaded as asked; the message is one line, meant for the user."""
