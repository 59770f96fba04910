#!/bin/sh
# bench/dns-client.sh QUERYFILE SECONDS — DNS query rate against the resolver
# that the calling environment is configured with: the first "nameserver" of
# its /etc/resolv.conf (natively the bench's dnsmasq; inside childflow its
# gateway; pasta and slirp4netns pass the host's file through, so their queries
# go to dnsmasq across their UDP translation). dnsperf keeps up to 100 queries
# in flight for SECONDS and prints "Queries per second".
set -eu
resolver=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)
if [ -z "$resolver" ]; then
    echo "dns-client: no nameserver in /etc/resolv.conf" >&2
    exit 1
fi
echo "resolver: $resolver"
exec dnsperf -s "$resolver" -d "$1" -l "$2" -t 2
