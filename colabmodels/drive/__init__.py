"""The Drive room: every request colabmodels makes to Google Drive lives in this package.

- ``.wire``: the v2 service builder, ``q`` quoting, the field lists and MIME constants,
  and the translation of Drive's errors into colabmodels errors;
- ``.session``: who is signed in (``DriveSession``) and
  path -> id resolution.

Everything above (storage/drive.py, bulk, browse, registry, api, datasets, widgets) calls into
this package through typed functions; a new Drive request goes here and nowhere else.
The package sits below ``storage`` and above ``auth``; importing it imports no Google library.
"""
