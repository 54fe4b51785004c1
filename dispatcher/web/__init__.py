"""The web dashboard (``python -m dispatcher serve``, started by dispatcher/serve.py): a Starlette app over
the job folders. Only app.py imports the optional ``web`` extra; data, files, auth and gpus do not."""
