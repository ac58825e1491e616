"""The one exception type for user mistakes (bad paths, broken files, wrong settings).

Scripts catch ``UserError`` and print its message on one line, without a traceback; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: the message names the file or value at fault and what is wrong."""
