// Package deployments holds the deployment files of the PIN reset service
// (Dockerfile, compose.yaml, k8s/) and, in its tests, their checks: the
// cross-check against the code and the strict Kubernetes decoding (both in
// `make test`), and the image and compose tests that build and run them
// with podman (`make images-test`, build tag images). It has no code of its
// own; nothing imports it.
package deployments
