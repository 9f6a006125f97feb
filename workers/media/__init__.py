"""Task media beyond single images: videos, archives of images, chunks and their cache."""
