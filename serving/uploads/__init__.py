"""New uploads retrievable within seconds, without a retrain: follow the raw log's videos table,
embed what the live index lacks with the champion's video tower, and serve it (follower.py says how)."""

from serving.uploads.follower import UploadFollower
from serving.uploads.live_index import with_uploads
from serving.uploads.uploaded_videos import UploadedVideos
from serving.uploads.video_files import NewVideoFiles

__all__ = ["NewVideoFiles", "UploadFollower", "UploadedVideos", "with_uploads"]
