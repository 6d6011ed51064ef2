"""extract.

Two values the decisions read about what the parser found live here, not in the parser's modules: importing
``decide`` (the read pass does, for every article's sketch) then loads no HTML parser before a run's first
request (``html`` and ``pagebody`` load selectolax and charset detection: about 15 ms).
"""

BODY = "body"  # the source of a field read from the page's body (a last resort), not from declared tags
MIN_IMAGE_PX = 200  # narrower: a thumbnail, an icon or a button, not the story's picture
