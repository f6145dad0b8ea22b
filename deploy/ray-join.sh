#!/bin/sh
# Usage: kestrel-ray-join COMMAND [ARG...]
#
# Joins the Ray cluster named by `--ray-address ADDR` (or `--ray-address=ADDR`) among the
# arguments, else by $KESTREL_RAY_ADDRESS, as a node offering no CPUs and no GPUs, then
# execs COMMAND. The gateway image's entrypoint runs `kestrel server` through it.
#
# Why: a Ray driver connects to a cluster through a raylet on its own host;
# ray.init(address="HOST:6379") fails in a container that is not a Ray node. Joining with
# zero CPUs keeps runnable tasks (1 CPU by default) on the head and worker nodes, while
# Kestrel's zero-CPU actors (coordinator, listener hosts, execution actors) may run next
# to the gateway.
#
# Nothing is joined when no address is set (kestrel starts a local Ray), or for `auto`,
# `local` and Ray Client (`ray://`) addresses. Extra `ray start` options can be given in
# $KESTREL_RAY_START_OPTIONS; $KESTREL_RAY_JOIN_ATTEMPTS (default 30, 2 s apart) bounds
# the wait for a head that is not up yet.
set -eu

address="${KESTREL_RAY_ADDRESS:-}"
take_next=0
for arg in "$@"; do
    if [ "$take_next" = 1 ]; then
        address="$arg"
        take_next=0
        continue
    fi
    case "$arg" in
        --ray-address) take_next=1 ;;
        --ray-address=*) address="${arg#--ray-address=}" ;;
    esac
done

case "$address" in
    "" | auto | local | ray://*) ;;
    *)
        attempts="${KESTREL_RAY_JOIN_ATTEMPTS:-30}"
        n=1
        # shellcheck disable=SC2086  # word splitting of the extra options is intended
        until ray start --address="$address" --num-cpus=0 --num-gpus=0 \
            --disable-usage-stats ${KESTREL_RAY_START_OPTIONS:-}; do
            if [ "$n" -ge "$attempts" ]; then
                echo "kestrel-ray-join: could not join the Ray cluster at $address" >&2
                exit 1
            fi
            n=$((n + 1))
            sleep 2
        done
        ;;
esac

exec "$@"
