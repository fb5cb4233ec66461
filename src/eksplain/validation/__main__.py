import sys

from eksplain.validation import render_markdown, run

sys.stdout.write(render_markdown(run()))
