FROM scratch
COPY c.txt /elsewhere/c.txt
COPY c.txt /elsewhere/d.txt
COPY --link a.txt /linked/a.txt
