// Package image keeps fockker's images under the image root: it unpacks root filesystem tars
// and image layers safely, loads OCI image layouts and docker-save archives, writes committed
// and exported file systems as tars, and records each image's config and origin.
package image
