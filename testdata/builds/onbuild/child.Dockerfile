FROM base
LABEL child=1
